-- Failed logins no longer lock an account: they suspend new password verifications until
-- `suspended_until` (unix seconds), for a time that doubles with each suspension in a row
-- (`suspensions`). `locked` is now only an administrator's lock, which stops every credential.
-- `failed_logins` counts attempts reserved before their verification, so a burst of guesses
-- gets no more verifications than the limit.
ALTER TABLE users ADD COLUMN suspended_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN suspensions BIGINT NOT NULL DEFAULT 0;
