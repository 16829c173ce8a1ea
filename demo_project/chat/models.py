"""The demo's own data: the shared canvas, kept across restarts."""

from django.db import models


class Stroke(models.Model):
    """One line drawn on the shared canvas: a color and points from 0 to 1."""

    color = models.CharField(max_length=20)
    points = models.JSONField()
    drawn = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.color} stroke of {len(self.points)} points"


class Message(models.Model):
    """One chat message, kept so that who joins a room later sees the conversation."""

    room = models.CharField(max_length=40, db_index=True)
    name = models.CharField(max_length=150)
    text = models.TextField()
    said = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} in {self.room}: {self.text[:40]}"
