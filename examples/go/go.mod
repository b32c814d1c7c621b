module streamhub-examples

go 1.19

require streamhub v0.0.0

replace streamhub => ../../bindings/go
