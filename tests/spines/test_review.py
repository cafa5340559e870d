import numpy as np
import pytest

from napari_spines.spines.review import ReviewQueue, status_colours


def make(scores=(0.9, 0.52, 0.3, 0.6, 0.45), threshold=0.5):
    statuses = np.array(["auto"] * len(scores), dtype=object)
    return ReviewQueue(np.array(scores), statuses, threshold), statuses


def test_most_uncertain_first_and_below_threshold_left_out():
    queue, _ = make()
    assert queue.order.tolist() == [1, 3, 0]  # |0.52-.5| < |0.6-.5| < |0.9-.5|
    assert queue.counts() == (0, 3)


def test_decide_moves_on_and_undo_reverts():
    queue, statuses = make()
    assert queue.decide("accepted") == 3  # first decision is on spine 1, then on to 3
    assert statuses[1] == "accepted"
    assert queue.decide("rejected") == 0
    assert statuses[3] == "rejected" and queue.counts() == (2, 3)
    assert queue.undo() == 3 and statuses[3] == "auto" and queue.current == 3
    assert queue.undo() == 1 and statuses[1] == "auto"
    assert queue.undo() is None


def test_next_previous_stop_at_ends():
    queue, _ = make()
    assert [queue.next() for _ in range(4)] == [1, 3, 0, 0]
    assert [queue.previous() for _ in range(3)] == [3, 1, 1]


def test_threshold_change_reorders():
    queue, _ = make()
    queue.set_threshold(0.3)
    assert queue.order[0] == 2 and len(queue.order) == 5


def test_unknown_status_is_refused_and_colours_follow_status():
    queue, statuses = make()
    with pytest.raises(ValueError, match="unknown status"):
        queue.set_status(0, "maybe")
    statuses[0] = "rejected"
    colours = status_colours(statuses)
    assert colours.shape == (5, 4) and colours[0, 3] < colours[1, 3]  # rejected is dimmed


def test_grow_keeps_place_when_spines_are_added():
    queue, statuses = make()
    queue.next()
    queue.next()  # on spine 3
    scores = np.append(queue.scores, np.nan)
    statuses = np.append(statuses, "added").astype(object)
    queue.grow(scores, statuses)
    assert queue.current == 3 and len(queue.order) == 3  # added spines need no review


def test_summary_is_one_count_of_the_shown_spines_with_hand_placed_ones_reviewed():
    queue, statuses = make(scores=(0.9, 0.52, 0.3, np.nan))
    statuses[3] = "added"
    # the threshold's detections and the added one
    assert queue.shown.tolist() == [True, True, False, True]
    assert queue.summary() == "3 spines: 1 reviewed, 2 to review"
    queue.decide("rejected")
    assert queue.summary() == "3 spines: 2 reviewed, 1 to review"
    assert queue.kept.tolist() == [True, True, False, True]


def test_a_queue_by_doubt_reviews_every_spine_most_doubtful_first():
    statuses = np.array(["carried", "new", "carried", "new"], dtype=object)
    queue = ReviewQueue(
        np.array([0.1, 0.9, np.nan, 0.5]), statuses, 0.5, doubt=np.array([0.2, 0.9, 0.5, 0.1])
    )
    assert queue.order.tolist() == [1, 2, 0, 3]  # by doubt, whatever the score and threshold
    assert queue.shown.all() and queue.summary() == "4 spines: 0 reviewed, 4 to review"
    assert queue.decide("accepted") == 2 and queue.decide("rejected") == 0
    assert statuses.tolist() == ["carried", "accepted", "rejected", "new"]
    assert queue.counts() == (2, 4) and queue.summary() == "4 spines: 2 reviewed, 2 to review"
    assert queue.undo() == 2 and statuses[2] == "carried"
    # a spine placed by hand joins the queue, last (no doubt), and counts as reviewed
    grown = np.append(statuses, "added").astype(object)
    queue.grow(np.append(queue.scores, np.nan), grown, np.array([0.2, 0.9, 0.5, 0.1, -np.inf]))
    assert queue.order.tolist() == [1, 2, 0, 3, 4] and queue.counts() == (2, 5)
