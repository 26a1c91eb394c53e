-- The intake's count looks up, for each report, whether a correction replaced it.
CREATE INDEX intake_receipts_corrects ON intake_receipts (mission_id, corrects)
    WHERE corrects IS NOT NULL;
