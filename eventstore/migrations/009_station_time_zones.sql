-- A polling station may name its own IANA time zone, where the host spans several; its
-- reports' times are read in it (else in the mission's zone).
ALTER TABLE polling_stations ADD COLUMN time_zone text;
