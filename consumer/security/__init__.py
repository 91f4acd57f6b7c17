"""Secret hygiene and least privilege for a secured deployment.

- `redact`: credentials masked wherever a URL or a property is printed (reprs, logs, errors);
- `acls`: the exact Kafka ACLs a scorer needs for its config and delivery mode
  (``python -m consumer.security.acls`` prints, formats or applies them).

The ranking API's bearer tokens live with the API (`consumer.api.auth`), the feature store's and
the Schema Registry's credentials with their clients. May import: `consumer.{config,errors}` and
`consumer.wiring` (`acls` builds its admin client's properties). Never imports the loop, the API,
the service or devtools.
"""
