# The node client (client.h): used by segment writers and readers to talk to a node.
dlog_library(NAME dlog_node_client
  SRCS client.cc
  DEPS dlog_net dlog_protocol)
