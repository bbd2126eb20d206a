-- The reference categories every catalog starts with. Products must belong to one of
-- them; the API has no operation that creates categories.
INSERT INTO categories (id, name) VALUES
    ('books', 'Books'),
    ('clothing', 'Clothing'),
    ('electronics', 'Electronics'),
    ('garden', 'Garden'),
    ('grocery', 'Grocery'),
    ('kitchen', 'Kitchen'),
    ('music', 'Music'),
    ('office', 'Office'),
    ('sports', 'Sports'),
    ('toys', 'Toys');
