// enketo-core's options for the field app (replaces enketo/config at bundle time; see build.mjs).
export default {
  experimentalOptimizations: { computeAsync: false },
  excludeNonRelevant: true, // like ODK Collect (JavaRosa): answers of hidden questions are not sent
  // No map tiles from the internet: the app works offline and contacts no third-party host. A blank tile
  // (a data: URL) keeps the geopoint widget's map working for typed coordinates and "detect my position".
  maps: [{ name: 'offline', tiles: ['data:image/gif;base64,R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw=='] }],
  googleApiKey: '',
  repeatOrdinals: false,
  validateContinuously: false,
  validatePage: true,
  swipePage: false,
  textMaxChars: 2000,
};
