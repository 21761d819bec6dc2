// enketo-core's options for the field app (replaces enketo/config at bundle time; see build.mjs).
export default {
  experimentalOptimizations: { computeAsync: false },
  excludeNonRelevant: true, // like ODK Collect (JavaRosa): answers of hidden questions are not sent
  maps: [], // no map tiles: the app works offline, and no third-party hosts are contacted
  googleApiKey: '',
  repeatOrdinals: false,
  validateContinuously: false,
  validatePage: true,
  swipePage: false,
  textMaxChars: 2000,
};
