// The coordinator: the CTNAS search loop, worker table and job ledger.
