// Package resilience holds the data plane's failure-handling building blocks:
// an injectable Clock (real and fake) and backoff schedules. It imports only
// the standard library so every policy can be tested exhaustively without sleeping.
package resilience
