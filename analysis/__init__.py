"""Analysis of observation forms: counts and shares per question, citing their events."""
