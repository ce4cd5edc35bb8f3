"""What several test modules share: known histories, generated ones, the CLI, signed
webhooks, the sandbox harness, the store's conformance suite and sample events, and a
throwaway PostgreSQL server. No test lives here."""
