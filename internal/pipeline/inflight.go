package pipeline

// InFlight is the number of files a worker holds now, read without
// copying the lists a Snapshot builds (metrics read it on every collection).
func (s *Stats) InFlight() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c.InFlight
}
