# placeholder: replaced by the store implementation
add_library(dlog_node_store INTERFACE)
