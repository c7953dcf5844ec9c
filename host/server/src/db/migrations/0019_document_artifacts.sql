-- An agent's document is also its artifact `documents/<name>`: the same
-- bytes, kept once, as the document's content. Such an artifact has no
-- blob in the artifact store; its bytes are found here by sha256, and
-- deleting the last version holding them writes its blob first.
ALTER TABLE artifacts ADD COLUMN in_documents INTEGER NOT NULL DEFAULT 0;
CREATE INDEX documents_by_digest ON documents (sha256);
