"""What accounts announces to the apps built on it, which subscribe in their
AppConfig.ready(): accounts never calls up into them."""

from django.dispatch import Signal

# An artist's SumUp grant was found dead and the artist is now held for one reconnect
# notice this lapse. Keyword arguments: `profile_id`, and `mark`, the
# `sumup_lapse_notified_at` just set. Sent inside the transaction that set the mark, at
# most once per lapse: what a receiver queues commits or rolls back with the mark, and a
# receiver that raises undoes it.
sumup_grant_lapsed = Signal()
