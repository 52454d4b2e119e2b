package cfmessageport

// DestroyServerPort destroys a server's receive right behind its back, as a bug elsewhere in the
// process could, for the tests of a server that loses its port.
func DestroyServerPort(s *Server) error { return s.port.Close() }
