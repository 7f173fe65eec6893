"""QC Collector: a multi-tenant, contract-first collector for quality-check reports."""
