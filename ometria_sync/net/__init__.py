"""The low-level network helpers both HTTP clients depend on (and nothing of this package's
own above them): backoff, Retry-After, TLS, loopback checks, the retry settings,
reading a credential from a file or the environment."""
