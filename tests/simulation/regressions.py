"""Every failure the simulation found, shrunk, as a replay token (``cardledger simulate
--replay TOKEN`` runs one). Each is kept as a regression example; so far every one came from
a planted bug, so each must fail with its planted bug and hold against the real ledger."""

REGRESSIONS: dict[str, str] = {
    "dedupe-off": (
        "cl1.eNqbzDB54qLk0omLUjInL0rJYVyZUlqQk5mcWJK6KiUVyE7VzU9LAwA-FRAl"),
    "window-31-days": (
        "cl1.eNqbzHSHQXTiouTSiYtSMictKktlmLwoJYdhUX42LnrSovxERpBqPApTGc8xMPLUT1pUlMwIMTizGGwwI9iAklS2yYsSSxnOOqpBZBNTzjFoXOZaV56Zl5JfrmtsqJuSWFkMAJY1QfU"),
    "late-capture-twice": (
        "cl1.eNqbzHiHQXTiouTSiYtSMictKktlmLwoJYdhUX42LnrSovxERpBqPApTGc8xsM6PmLSoKJkRYnBmMTNInhksn1jKetZry6RFJalMEIOSExmX5JelFm3KSSxJ1U1OLCgpLUrVLSnPTE4FACLBRZw"),
    "order-by-arrival": (
        "cl1.eNqbzHCHQXTiouTSiYtSMicvSslhWJSfPWlRWSoDjINOT1qUn8iArBoLncp0joHtvPGkRUXJDKgGZxaDDWYCq0ssZTzr9A6oKpURJrghvygltUg3qVI3sagosywxBwAkOUWn"),
    "window-31-days-2": (
        "cl1.eNqbzHCHQXTiouTSiYtSMictKktlmLwoJYdhUX42LnrSovxEJpBq3AqKkhmgClIZzqa3TFqUWcw2cVFG6uRFiaVsZ0XNJy0qSWWGWJiYco5BU1hsXXlmXkp-ua6xoW5KYmUxAE4hQAk"),
    "late-capture-twice-2": (
        "cl1.eNqbzHCHQXTiouTSiYtSMicvSslhWJSfDaMnLSpLZcAUzE9kwqYaiU5lOMfAzNIyaVFRMljppEWZxWCDGMHyiaWsZ4OOT1pUksoKMSg5kWVJWmlOzqacxJJU3eTEgpLSolTdkvLM5FQACItFPg"),
    "order-by-arrival-2": (
        "cl1.eNqbzHCHQWTiouTSiYtSMicvSslhWJSfPWlRWSoDjINOT1qUn8iArBoLncp0joHtvPGkRUXJDKgGZxYDDU4sZTlb5Aekc1nO6peBJJmAkhvyi1JSi3STKnUTi4oyyxJzAMASQyM"),
}
