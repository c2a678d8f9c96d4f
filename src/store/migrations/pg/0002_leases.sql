-- Each instance's lease: renewed every few seconds while it lives. An interaction engaged on
-- an instance with no lease row (its lease lapsed and a survivor forgot it) is a dead
-- instance's, settled by whichever survivor finds it first. Times are the server's clock in
-- microseconds since the Unix epoch, so the instances' clocks need not agree.
CREATE TABLE instance_leases (
    name     TEXT   PRIMARY KEY,
    until_us BIGINT NOT NULL
);
