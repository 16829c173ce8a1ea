"""What the test handlers record, for checks that outlive a worker."""

from django.db import models


class Handled(models.Model):
    """One event a handler took, in the order handlers took them."""

    sid = models.CharField(max_length=40, db_index=True)
    n = models.IntegerField()
