"""The txstream streaming job: Kafka → typed rows → PostgreSQL, runnable by spark-submit anywhere."""
