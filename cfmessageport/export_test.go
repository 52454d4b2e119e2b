package cfmessageport

// DestroyServerPort destroys a server's receive right behind its back, as a bug elsewhere in the
// process could, for the tests of a server that loses its port.
func DestroyServerPort(s *Server) error { return s.port.Close() }

// ServerQueued returns how many messages wait in a server's queue.
func ServerQueued(s *Server) uint32 {
	st, err := s.port.Status()
	if err != nil {
		return 0
	}
	return st.MessageCount
}
