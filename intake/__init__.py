"""Election-day intake: observers' submissions at volume, outside the mission workflow."""
