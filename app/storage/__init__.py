"""Storage: the only package that speaks SQL or imports psycopg."""
