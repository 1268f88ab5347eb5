module github.com/shmring/shmring

go 1.26.0

require golang.org/x/sys v0.50.0

require (
	github.com/google/uuid v1.6.0 // indirect
	go.uber.org/goleak v1.3.0 // indirect
)
