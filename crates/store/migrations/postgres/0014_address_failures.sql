-- Failed logins per client address (IPv6: per /64), shared by every node so that the address
-- throttle sees a password spray spread over a cluster. `window_start` and `changed` are epoch
-- milliseconds; `failures` counts those since `window_start` (a window is 15 minutes). Nodes
-- add their failures and read the rows changed since their last look, four times a second.
CREATE TABLE address_failures (
    address TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    changed BIGINT NOT NULL
);
CREATE INDEX address_failures_changed ON address_failures (changed);
