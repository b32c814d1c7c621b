module streamhub

go 1.19
