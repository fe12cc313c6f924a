"""Who may talk to a node: TLS credentials (`tls`), the development CA (`certs`), bearer tokens
(`tokens`), the role table (`roles`) and the gRPC server interceptor that enforces it (`auth`)."""
