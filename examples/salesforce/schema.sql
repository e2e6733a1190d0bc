-- Tables of the Salesforce outbound-message recipe (SQLite).
CREATE TABLE IF NOT EXISTS accounts (
    id         TEXT PRIMARY KEY,          -- the Salesforce record Id
    name       TEXT NOT NULL,
    industry   TEXT,
    updated_by TEXT NOT NULL              -- the notification that last wrote it
);
-- Notifications already applied: Salesforce redelivers until it gets an Ack.
CREATE TABLE IF NOT EXISTS sf_notifications (
    id         TEXT PRIMARY KEY,
    applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
