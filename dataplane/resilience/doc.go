// Package resilience holds the data plane's failure-handling building blocks:
// an injectable Clock (real and fake), backoff schedules with full jitter, a
// circuit breaker and the least-in-flight endpoint picker. It imports only the
// standard library so every policy can be tested exhaustively without sleeping.
package resilience
