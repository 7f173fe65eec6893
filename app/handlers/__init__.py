"""HTTP handlers, one module per OpenAPI tag: parse, call one service, shape the answer."""
