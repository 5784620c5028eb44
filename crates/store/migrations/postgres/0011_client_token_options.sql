-- Per-client options of issue 30: the algorithm that signs the client's access tokens (ES256
-- unless the client asked for RS256 or EdDSA; RFC 9068 §2.1 says RS256 must be possible), and
-- whether the client may introspect personal access tokens (off: a PAT is a full credential).
ALTER TABLE oauth_clients ADD COLUMN access_token_alg TEXT NOT NULL DEFAULT 'ES256';
ALTER TABLE oauth_clients ADD COLUMN introspect_personal_tokens BIGINT NOT NULL DEFAULT 0;
