"""Alert channels: deliver one notification and report; they never write rows."""
