module github.com/shmring/shmring

go 1.26.0

require (
	github.com/google/uuid v1.6.0
	go.uber.org/goleak v1.3.0
	golang.org/x/sys v0.50.0
)

require github.com/HdrHistogram/hdrhistogram-go v1.4.0

require golang.org/x/net v0.62.0
