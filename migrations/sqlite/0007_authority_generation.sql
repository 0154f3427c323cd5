-- One row whose generation every write transaction advances before it commits
-- (store::WriteTx). Instances read it to know whether their in-memory answers are
-- still current (store::generation).
CREATE TABLE authority (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO authority (id, generation) VALUES (1, 0);
