"""The low-level network helpers both HTTP clients depend on (and nothing of this package's
own above them): backoff, Retry-After, the retry settings, TLS and reading a credential
(``http.py``); every URL the job names, parsed, checked and redacted once (``urls.py``)."""
