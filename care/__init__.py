"""The health record: models and the services that change them."""
