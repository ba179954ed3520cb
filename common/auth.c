/* placeholder until implemented */
typedef int ftm_placeholder_auth;
