// InNetns is a header template (netns.h); this unit holds nothing else today but keeps the
// build list stable.
#include "netns.h"
