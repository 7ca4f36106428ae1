-- Users signing in through an external OIDC issuer (e.g. Cognito): the issuer and subject they
-- were provisioned from. Their id is uuid5(issuer#sub), their password_hash is unusable ('!').
ALTER TABLE users ADD COLUMN external_issuer text;
ALTER TABLE users ADD COLUMN external_subject text;
ALTER TABLE users ADD CONSTRAINT users_external_pair_chk
    CHECK ((external_issuer IS NULL) = (external_subject IS NULL));
CREATE UNIQUE INDEX users_external_identity_key ON users (external_issuer, external_subject)
    WHERE external_issuer IS NOT NULL;
-- Refresh-token lookups by user for "log out everywhere" and bans only touch live tokens.
CREATE INDEX refresh_tokens_user_live_idx ON refresh_tokens (user_id) WHERE revoked_at IS NULL;
