-- Every greeting given, so that the test sees the module's own SQLite database at work.
CREATE TABLE greetings (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL
);
