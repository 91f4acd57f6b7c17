"""Feast definitions of the demo features: one entity and one feature view per CSV file.

The schemas are left to Feast to infer from the Parquet files, so the views follow whatever
columns `consumer.devtools.demo_data` writes (categorical columns as strings, dense ones as floats).
"""

from datetime import timedelta

from feast import Entity, FeatureView, FileSource, ValueType

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.INT64)

users = FeatureView(
    name="users",
    entities=[user],
    ttl=timedelta(0),  # 0: values never expire; the demo data is written once
    source=FileSource(path="data/users.parquet", timestamp_field="event_timestamp"),
)

items = FeatureView(
    name="items",
    entities=[item],
    ttl=timedelta(0),
    source=FileSource(path="data/items.parquet", timestamp_field="event_timestamp"),
)
