module padlock/bench/loadgen-go

go 1.22
