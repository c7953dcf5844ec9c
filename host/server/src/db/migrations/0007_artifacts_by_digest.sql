-- The garbage collector asks which blobs are referenced, by digest.
CREATE INDEX artifacts_by_digest ON artifacts (sha256);
