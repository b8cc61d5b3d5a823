"""Clinical logic: units, reference ranges, risk models, trends, advice, summaries, reports."""
