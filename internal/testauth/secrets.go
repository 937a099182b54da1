package testauth

// Secrets returns every secret the server holds now: refresh tokens
// (current and rotated away), client secrets and authorization codes not
// yet exchanged. Tests grep logs and outputs for them. Access tokens are
// not kept (they are JWTs: look for "eyJ").
func (s *Server) Secrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for tok := range s.refresh {
		out = append(out, tok)
	}
	for tok := range s.rotated {
		out = append(out, tok)
	}
	for code := range s.codes {
		out = append(out, code)
	}
	for _, c := range s.clients {
		if c.secret != "" {
			out = append(out, c.secret)
		}
	}
	return out
}
