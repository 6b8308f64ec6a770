// Defaults the CLI shows in help without loading the controller (and its X.509 library).
export const DEFAULT_LISTEN = '127.0.0.1:15012';
