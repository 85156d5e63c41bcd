#pragma once
// The few rtnetlink operations container init needs, without exec'ing ip(8).

namespace deltabox {

// Sets the loopback interface up in the current network namespace (a new netns starts with
// lo down). Throws Error with the kernel's answer when it refuses.
void bring_up_loopback();

}  // namespace deltabox
