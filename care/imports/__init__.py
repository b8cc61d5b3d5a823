"""Report import: tabular, HL7 v2 and FHIR R4 checkup results into observations."""
