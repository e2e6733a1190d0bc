-- The example ERP database `make run` creates (SQLite) and generates the CRM
-- API from (portico generate). Several tables, a composite key, foreign keys,
-- nullable columns, decimals, timestamps, text with quotes and unicode.
PRAGMA foreign_keys = ON;

CREATE TABLE customers (
    id         INTEGER PRIMARY KEY,
    name       VARCHAR(80) NOT NULL,
    email      VARCHAR(120) UNIQUE,
    city       VARCHAR(60),
    balance    DECIMAL(12,2) NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX customers_city ON customers(city);

CREATE TABLE products (
    sku        VARCHAR(20) PRIMARY KEY,
    title      VARCHAR(120) NOT NULL,
    price      DECIMAL(10,2) NOT NULL CHECK (price >= 0),
    active     BOOLEAN NOT NULL DEFAULT 1
);

CREATE TABLE orders (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    placed_at   TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    note        TEXT
);
CREATE INDEX orders_customer ON orders(customer_id);

CREATE TABLE order_lines (
    order_id INTEGER NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    line_no  INTEGER NOT NULL,
    sku      VARCHAR(20) NOT NULL REFERENCES products(sku),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, line_no)
);

INSERT INTO customers (name, email, city, balance) VALUES
    ('Ada Lovelace', 'ada@example.com', 'London', 120.50),
    ('Émile Zola', 'emile@example.fr', 'Paris', 0),
    ('Grace O''Hopper', 'grace@example.org', 'New York', 99.99),
    ('Søren Kierkegaard', NULL, 'København', 12.00),
    ('山田 太郎', 'taro@example.jp', '東京', 3000.00);
INSERT INTO products (sku, title, price) VALUES
    ('P-100', 'Analytical Engine (replica)', 1999.00),
    ('P-200', 'Punched cards, box of 500', 12.50),
    ('P-300', 'Notebook "Notes on the Engine"', 4.20);
INSERT INTO orders (customer_id, note) VALUES (1, 'first order'), (3, NULL);
INSERT INTO order_lines (order_id, line_no, sku, quantity) VALUES
    (1, 1, 'P-100', 1), (1, 2, 'P-200', 3), (2, 1, 'P-300', 10);
