-- Every insert or update of a routing decision records it in ops.routing_decision_history, and
-- looks up the mapping version its outbox rows carry by decision id (migration 010). Without this
-- index each decision written scanned the whole outbox: a run of n decisions over an outbox of m
-- rows cost n × m.
create index delivery_outbox_by_decision on ops.delivery_outbox (decision_id);
