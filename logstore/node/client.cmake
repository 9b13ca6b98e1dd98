# placeholder: replaced by the node client implementation
add_library(dlog_node_client INTERFACE)
